with

source as (

    select * from {{ source('chroma', 'collections') }}

),

renamed as (

    select
        collection_role,
        chroma_path,
        collection_name,
    from source

)

select * from renamed
